"""Webhook URLs the benchmarks configure. Never contacted: the pipeline only renders into the
outbox, and `.invalid` cannot resolve anyway. A module of constants only, so that the cold-start
child can import it without loading anything it measures."""

TEAMS_URL = "https://teams.example.invalid/workflows/bench"
SLACK_URL = "https://hooks.slack.example.invalid/services/T0/B0/bench"
