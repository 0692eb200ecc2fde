-- materialized: export
-- export_to: daily_sales
-- format: parquet
-- partition_by: year, month, day
-- trigger: on_change
-- description: Daily sales for the partner's warehouse, a folder per day
SELECT country, orders, revenue,
       date_part('year', ordered_on) AS year,
       date_part('month', ordered_on) AS month,
       date_part('day', ordered_on) AS day
FROM semantic.daily_sales
