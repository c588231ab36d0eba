"""Running the service: backups and restores, the workers' heartbeats that a restore checks,
and the checks of a site's DNS, relay and public address (``distributor doctor``)."""
