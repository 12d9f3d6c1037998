"""The data path as plain functions (no Prefect): plan → masks → clean → clarify → measure → gate → publish."""
