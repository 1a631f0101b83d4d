"""``deflicker bench``: the quality, speed, flow and plugin benchmarks and their metrics."""
