"""netmaster HTTP API: app factory (app.py), model routes (routes.py), error middleware
(errors.py), follower -> leader proxy (proxy.py), non-model endpoints (misc.py)."""
