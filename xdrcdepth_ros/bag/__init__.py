"""rosbag2 tools without ros2cli: ``nuscenes2bag`` (:mod:`.nuscenes2bag`), ``bag_player`` (:mod:`.player`,
``ros2 bag play``), ``bag_recorder`` (:mod:`.recorder`, ``ros2 bag record``), atomic bag writing
(:mod:`.files`) and ``xdrcdepth replay-demo`` (:mod:`.replay_demo`). docs/bag_tools.md has the details."""
