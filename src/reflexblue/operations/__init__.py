"""What the operator watches: Prometheus metrics, request ids and the access log."""
