-- Whether a tenant nests groups at all, answered by one index probe: when it does not, a
-- user's groups are its direct memberships (one join) instead of a recursive walk.
CREATE INDEX group_members_nested_idx ON group_members (tenant_id) WHERE member_type = 'Group';
