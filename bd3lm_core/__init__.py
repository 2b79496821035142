"""bd3lm_core: the block diffusion LM engine (network, loader, sampler, training). No Qt here."""
