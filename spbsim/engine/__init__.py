"""Simulated time: the event loop, timed frees, background work (kswapd,
kcompactd) and the workload sources that feed it."""
