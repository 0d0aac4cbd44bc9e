"""Loki: LogQL over a live Loki or exported logs, dashboards and alert backtests."""
