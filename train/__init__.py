"""Training stage: SRM / CUBA spiking networks with PSP normalization on lava-dl SLAYER."""
