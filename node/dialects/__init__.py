"""Dialects: translation between OpenAI's chat/completions and Anthropic's Messages API.

A client may speak one dialect to a model whose upstream speaks the other. These modules turn
requests, answers and streams of one into the other, as pure functions and small state machines
over JSON-shaped dicts: no aiohttp, no I/O, no clock unless given one. The routes call them, and
turn their errors (`node.dialects.errors`) into the envelope of the dialect the client speaks.

    messages_to_chat    Anthropic client, OpenAI-compatible upstream (request, answer, stream)
    chat_to_messages    OpenAI client, Anthropic upstream (request, answer, stream)
    usage               Anthropic's four usage counts read into one record, both ways
    sse                 encoding and decoding single server-sent events of either dialect
    errors              what the translators raise
"""
