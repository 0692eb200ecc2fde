-- description: Orders with a positive amount, statuses in lower case
-- materialized: incremental
-- unique_key: order_id
-- trigger: on_change
-- check not_null: order_id, customer_id, amount
-- check unique: order_id
-- check relationships customer_id: source.customers.id
-- check accepted_values status: open, shipped
SELECT order_id, customer_id, lower(status) AS status, amount,
       make_date(year, month, day) AS ordered_on
FROM source.orders
WHERE amount > 0
