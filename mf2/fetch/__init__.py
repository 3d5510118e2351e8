"""`mf2 fetch`: manifest -> downloaded, verified videos and a status table."""
