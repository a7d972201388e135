"""Where the default GPU comes from when neither --gpu nor --vram is given.

Each source is a pure parser (tested on recorded tool output under tests/fixtures/detect/) and a
thin runner that never raises: a missing tool, a timeout or garbage means "not detected". The
order is decided in `willitrun.gpu.default_gpu`.
"""
