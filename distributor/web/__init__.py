"""The web server: the pages behind every link in a message (unsubscribe, preferences, sign-up
and confirmation, the archive); later the staff dashboard and JSON API. Views parse the request,
call a service and render a template; the services hold the rules and the SQL."""
