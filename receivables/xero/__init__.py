"""Xero: connections for many organisations across several Xero apps, synced through the
official SDK into receivables' tables under a governor that keeps within Xero's limits.

- ``sync``: ``sync_connection(connection, full=False)``, ``discover_connections(grant)``;
- ``client``: the SDK set up per connection, each call governed and retried (``tuning``);
- ``tokens``: OAuth tokens spent at the app's URL, refreshed under the grant's lock;
- ``governor`` (and ``redis_governor``): Xero's limits shared by every worker;
- ``normalise`` and ``store``: Xero's documents in receivables' shape, written a page at a time;
- ``errors``: what can go wrong, in words safe to store and show.
"""
