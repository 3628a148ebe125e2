"""clipmesh's Grafana dashboards as code: shared panel helpers and one module per board
(tools/generate_dashboards.py writes them out)."""
