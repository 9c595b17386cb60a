-- name: snapshot
-- The migrated schema as lines of text (tables and columns, constraints, indexes, functions,
-- views), compared by a test with the committed sql/schema.sql.
SELECT line FROM (
    SELECT 1 AS part, format('column %s.%s.%s %s%s%s', table_schema, table_name, column_name,
                             data_type, CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END,
                             CASE WHEN column_default IS NOT NULL
                                  THEN ' DEFAULT ' || column_default ELSE '' END) AS line
    FROM information_schema.columns
    WHERE table_schema IN ('assay', 'assay_analytics')
    UNION ALL
    SELECT 2, format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'assay'::regnamespace
    UNION ALL
    SELECT 3, format('index %s', indexdef)
    FROM pg_indexes WHERE schemaname IN ('assay', 'assay_analytics')
    UNION ALL
    SELECT 4, format('function %s.%s(%s)', n.nspname, p.proname,
                     pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('assay', 'assay_analytics')
    UNION ALL
    SELECT 5, format('view %s.%s', table_schema, table_name)
    FROM information_schema.views WHERE table_schema IN ('assay', 'assay_analytics')
) lines
ORDER BY part, line
