"""One customer across web, app, a store's pickup counter and its till, on one stock pool.

    python examples/omnichannel_journey.py      # the same as `niaga demo`

The journey's steps are in kernel/journey.py (``_walk``): each is a few HTTP calls to
the app `niaga serve` runs, on a temporary SQLite store with the demo markets and
catalog, followed by tables of stock, cart, order and points.
"""

from kernel.journey import run

if __name__ == "__main__":
    run()
