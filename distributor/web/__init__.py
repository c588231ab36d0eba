"""The web server, a face: the pages behind every link in a message (unsubscribe, preferences,
sign-up and confirmation, the archive, tracking), the staff dashboard and the JSON API. Views parse
the request, call a room's service (the same the CLI calls) and render a template; the services
hold the rules and the SQL. Nothing but a face imports it."""
