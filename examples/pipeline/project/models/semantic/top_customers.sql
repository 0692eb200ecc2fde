-- materialized: view
-- description: Customers by revenue, biggest first
SELECT c.name, c.country, sum(o.amount) AS revenue
FROM prepared.orders o
JOIN source.customers c ON c.id = o.customer_id
GROUP BY c.name, c.country
ORDER BY revenue DESC
