"""The outside world behind small interfaces: files, database, payments, clock."""
