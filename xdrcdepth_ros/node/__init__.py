"""The depth node: ``depth_node`` (module :mod:`.depth_node`) with its parameters (:mod:`.params`), input
subscriptions (:mod:`.input_qos`), message validation (:mod:`.conversions`), radar->camera transforms
(:mod:`.transforms`), diagnostics (:mod:`.diagnostics`) and the shared ``main()`` shape (:mod:`.run`)."""
