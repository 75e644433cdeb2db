"""Fault suite (issue 6, point 3): one test (or small group) per fault, through real stores.

1. Process dies between reserve and place: test_crash_after_reserve.py (a SIGKILLed
   ``niaga serve``; retry + sweeper). The sweeper's part in-process: tests/services/
   test_expiry.py (test_a_checkout_that_died_after_reserving_is_released_by_the_sweeper);
   DynamoDB's TTL backstop: tests/aws/test_handlers.py
   (test_worker_releases_a_reservation_deleted_by_ttl_once).
2. Gateway times out after authorizing: test_gateway_timeout.py (SQLite, PostgreSQL,
   DynamoDB). A gateway answering after the stock hold: tests/services/test_expiry.py.
3. DynamoDB transaction conflict: test_dynamodb_conflict.py (botocore-level injection).
4. Duplicate webhooks: sequential in tests/api/test_webhooks.py; concurrent in
   test_duplicate_webhooks.py.
5. A worker record delivered twice: tests/aws/test_handlers.py
   (test_worker_publishes_outbox_events_once_and_reports_a_failing_record: redelivered
   records publish and credit nothing; test_worker_releases_a_reservation_deleted_by_ttl_once).
6. SQLite ``database is locked``: test_sqlite_locked.py; racing checkouts on one file:
   tests/contract/test_concurrency.py.
"""
