-- description: Revenue and orders per day and country
-- materialized: incremental
-- unique_key: ordered_on, country
-- trigger: on_change
-- check not_null: ordered_on, country
-- check unique: ordered_on, country
-- check row_count: 1..
-- warn sql: SELECT * FROM staged WHERE revenue > 100000
SELECT o.ordered_on, c.country, count(*) AS orders, sum(o.amount) AS revenue
FROM prepared.orders o
JOIN source.customers c ON c.id = o.customer_id
GROUP BY o.ordered_on, c.country
