"""The generator gateway: durable text-to-video jobs across providers, with streamed progress."""
