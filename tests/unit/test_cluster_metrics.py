"""The front's /metrics: the replicas' series merged, each sample labelled with its replica."""

from __future__ import annotations

from llmasos.cluster.metrics import merged, with_replica_label

REPLICA = """# HELP llmasos_processes Processes by state.
# TYPE llmasos_processes gauge
llmasos_processes{model="m",state="running"} 2
# HELP llmasos_ttft_seconds Time to first token.
# TYPE llmasos_ttft_seconds histogram
llmasos_ttft_seconds_bucket{model="m",le="0.5"} 3
llmasos_ttft_seconds_sum{model="m"} 1.25
llmasos_up 1
"""


def test_a_sample_gets_the_replica_label_with_or_without_labels_of_its_own():
    assert with_replica_label('a{b="c"} 1', 7) == 'a{replica="7",b="c"} 1'
    assert with_replica_label("a 1", 7) == 'a{replica="7"} 1'


def test_two_replicas_merge_with_each_help_once_and_every_sample_kept():
    lines = merged({2: REPLICA, 1: REPLICA.replace("} 2", "} 5")})
    assert lines.count("# HELP llmasos_processes Processes by state.") == 1
    assert lines.count("# TYPE llmasos_ttft_seconds histogram") == 1
    processes = [line for line in lines if line.startswith("llmasos_processes{")]
    assert processes == [
        'llmasos_processes{replica="1",model="m",state="running"} 5',
        'llmasos_processes{replica="2",model="m",state="running"} 2',
    ]
    ttft = lines.index("# TYPE llmasos_ttft_seconds histogram")
    assert lines[ttft + 1].startswith('llmasos_ttft_seconds_bucket{replica="1"')  # its family
    assert 'llmasos_up{replica="2"} 1' in lines
