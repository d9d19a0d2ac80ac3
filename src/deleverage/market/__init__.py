"""Market: venue calendars, the latent order book, market makers."""
