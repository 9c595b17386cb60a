"""Statistics, pure: intervals for rates and their differences, bootstrap, judge-human agreement,
prediction-powered correction and paired tests. Every number Assay calls significant comes from
here, so alerts, reports, the CI gate and comparisons agree on how."""
