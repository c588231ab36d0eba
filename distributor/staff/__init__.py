"""The staff: accounts with roles, their sessions and API tokens, and the audit log of what
they did. The web dashboard, the JSON API and ``distributor users`` all use these services.
Imports only the ground floor."""
