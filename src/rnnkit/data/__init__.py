"""Data that works offline: task generators and corpora read from what is installed."""
