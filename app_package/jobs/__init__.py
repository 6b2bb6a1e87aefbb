"""Jobs as a service: the manager and its supervisor (`manager`), the job's own process (`child`),
forking and killing (`forkserver`), worker identity (`identity`), callbacks, statusInfo, the job
store (`store/`), CWL runners (`cwl_engine`)."""
