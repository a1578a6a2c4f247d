"""Storage: the versioned file system and agent memory of processes, on SQLite (embedded) or
PostgreSQL, hash-partitioned by owner across shards, sealed at rest with a master key.

    service          Storage: opens the shards from the settings; fs and memory views
    fs, paths        the file system (versions, CAS, grants, quotas) and its namespaces
    agent_memory     core, recall and archival memory; virtual_context pages conversations
    sharding         owners across shards, rebalancing
    file_store, memory_store, schema, database, sqlite_db, postgres_db
                     SQL written once over either database
"""
