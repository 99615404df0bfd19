"""The operator's admin: an API under /admin/api and a web page at /admin.

    site.setup(app)            routes, the page, and at start the password (generated if none)
    config.with_overrides(s)   at start: settings changed in /admin laid over the file's
    config.apply_settings      swap the node's settings live, rebuilding what depends on them
    tables.MIGRATIONS          series "admin" of the node's database

Modules: auth (password, sessions, throttle), config (settings), upstreams, money, stats,
http (cookie + guard), routes / routes_money (thin handlers), ui (the static page), tables
(the admin's own tables). Nothing is imported here: the parts (node.parts) import the admin's
tables and auth, and the admin's handlers import the parts.
"""
