"""The node on Nostr: keys and the announcement, the service that publishes and discovers,
the relay wire protocol."""
