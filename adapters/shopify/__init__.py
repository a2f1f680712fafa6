"""Shopify adapter: pure translation, webhook receiver, inbox processing, GraphQL poller and bulk backfill."""
