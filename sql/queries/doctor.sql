-- name: table_columns
SELECT column_name FROM information_schema.columns
WHERE table_schema = coalesce(:schema, current_schema()) AND table_name = :table

-- name: is_superuser
SELECT rolsuper FROM pg_roles WHERE rolname = current_user

-- name: can_write_table
SELECT has_table_privilege(current_user, :table, 'INSERT,UPDATE,DELETE,TRUNCATE')
