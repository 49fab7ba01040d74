-- KB-7D57 step 6 rollback: "n/a" — the smoke test commits nothing.
SELECT 1 WHERE false;
