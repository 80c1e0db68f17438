"""Launch and viewer tools: ``xdrcdepth launch`` (:mod:`.launcher`, reading the launch files with
:mod:`.launch_graph`) and ``foxglove_viewer`` (:mod:`.foxglove_viewer`). docs/launch_and_viewers.md."""
