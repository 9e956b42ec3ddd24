"""What Prometheus and Alertmanager are told about Drape: recording and alerting rules (each
with the promtool test cases that fire it and keep it quiet), the scrape configuration, the
Alertmanager routing and the Grafana dashboards, all generated from code into
``monitoring/`` (``python tools/monitoring.py``)."""
