"""Workload snippets shared by the engine and report tests."""

#: page cache filling memory, short-lived anon, kmalloc churn and THP faults
PRESSURE_SOURCES = """
[[source]]
name = "pagecache"
kind = "pagecache"
rate = "400MB/s"
orders = {0 = 0.8, 2 = 0.2}
lifetime = "inf"
[[source]]
name = "anon"
kind = "anon"
rate = 30000
lifetime = {dist = "exp", mean = "3s"}
[[source]]
name = "kmalloc"
kind = "unmovable"
rate = 20000
orders = {0 = 0.7, 1 = 0.2, 3 = 0.1}
lifetime = {dist = "lognormal", median = "1s", sigma = 1.5}
[[source]]
name = "thp"
kind = "thp"
rate = 200
lifetime = {dist = "exp", mean = "4s"}
"""

#: a 2 GB, 5 s scenario under pressure: the report tests' quick run
TINY_SCENARIO = """
[scenario]
name = "tiny"
memory = "2G"
cpus = 4
duration = "5s"
seed = 1
sample_interval = "1s"

""" + PRESSURE_SOURCES
