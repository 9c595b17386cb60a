-- name: is_superuser
SELECT rolsuper FROM pg_roles WHERE rolname = current_user

-- name: can_write_table
SELECT has_table_privilege(current_user, :table, 'INSERT,UPDATE,DELETE,TRUNCATE')
