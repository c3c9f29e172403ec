"""Load from client threads, as the corpus's servers run it in a forked child."""

import sys
import threading
from typing import Callable, List


def run_client_threads(client: Callable[[int], None], clients: int, failures: List[str]) -> int:
    """Runs `client(index)` on `clients` threads at once and waits for them all. `failures` is
    the list the clients append what went wrong to: the first few are printed, and their number
    is returned (the child's exit status)."""
    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for failure in failures[:5]:
        print("client: %s" % failure, file=sys.stderr)
    return len(failures)
