"""A study's own regularizer and model for regbench: see ../study.yaml."""
