"""Human labels: stored beside scores, sampled into annotation queues, compared with judges."""
