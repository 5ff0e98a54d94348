"""Statistics over seeds and documents: seed intervals, the paired bootstrap and Fieller, two-phase fits, behaviour curves, the entropy-matched resistance statistic."""
