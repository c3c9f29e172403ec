"""Graph algorithms with networkx, on one thread: dict-of-dicts traversals, heaps, generators
feeding generators (networkx's algorithms yield their results), and the library's dispatch
layers (`_dispatchable` wrappers) between every call and its work.

Timed functions (truth.py): `analyse_graphs` (the whole session) and what it does to each of a
series of seeded random graphs: `shortest_paths`, `centrality`, `structure`.

    python graphs.py --truth truth.json [--scale 1] [--wait]
"""

import random
import sys

import networkx as nx

from truth import Truth, run_program

TRUTH = Truth("graphs")
FUNCTIONS = ("analyse_graphs", "shortest_paths", "centrality", "structure")
GRAPHS = 10  # at scale 1: about 2-3 s on CPython 3.12


def make_graph(seed: int) -> nx.Graph:
    graph = nx.connected_watts_strogatz_graph(220, 6, 0.2, seed=seed)
    weights = random.Random(seed)
    for u, v in graph.edges():
        graph[u][v]["weight"] = weights.randint(1, 20)
    return graph


def shortest_paths(graph: nx.Graph) -> int:
    began = TRUTH.begin()
    try:
        total = 0
        for source in list(graph)[:25]:
            lengths = nx.single_source_dijkstra_path_length(graph, source, weight="weight")
            total += sum(lengths.values())
        total += len(nx.astar_path(graph, 0, len(graph) - 1, weight="weight"))
        return total
    finally:
        TRUTH.add("shortest_paths", began)


def centrality(graph: nx.Graph) -> int:
    began = TRUTH.begin()
    try:
        scores = nx.betweenness_centrality(graph, k=12, seed=7)
        ranks = nx.eigenvector_centrality(graph, max_iter=500, tol=1e-4, weight="weight")
        return len([node for node in graph if scores[node] > 0.01 or ranks[node] > 0.08])
    finally:
        TRUTH.add("centrality", began)


def structure(graph: nx.Graph) -> int:
    began = TRUTH.begin()
    try:
        total = sum(len(component) for component in nx.biconnected_components(graph))
        total += len(nx.minimum_spanning_tree(graph, weight="weight"))
        total += sum(nx.triangles(graph).values())
        total += len(nx.max_weight_matching(nx.ego_graph(graph, 0, radius=3)))
        total += len(list(nx.community.label_propagation_communities(graph)))
        return total
    finally:
        TRUTH.add("structure", began)


def analyse_graphs(count: int) -> int:
    began = TRUTH.begin()
    try:
        total = 0
        for seed in range(count):
            graph = make_graph(seed)
            total += shortest_paths(graph) + centrality(graph) + structure(graph)
        return total
    finally:
        TRUTH.add("analyse_graphs", began)


if __name__ == "__main__":
    sys.exit(run_program(TRUTH, FUNCTIONS, analyse_graphs, GRAPHS))
