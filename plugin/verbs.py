"""The verbs zfsaga implements, by their IDL name: the module and function under zfsaga.plugin
that answers each (the dispatcher, plugin/dispatch.py, imports only the one called), and the
plugin's type. Plain data with no import: Plugin.query declares from it, tools/install.py lays
one executable per verb from it, and neither needs the dispatcher."""

#: Interface.method -> "module:function" under zfsaga.plugin.
IMPLEMENTATIONS = {
    "Plugin.query": "query:query",
    "Plugin.diagnostics": "query:diagnostics",
    "SR.create": "sr:create", "SR.probe": "sr:probe", "SR.attach": "sr:attach", "SR.detach": "sr:detach",
    "SR.destroy": "sr:destroy",
    "SR.stat": "sr:stat", "SR.ls": "sr:ls", "SR.set_name": "sr:set_name",
    "SR.set_description": "sr:set_description",
    "Volume.create": "volume:create", "Volume.stat": "volume:stat",
    "Volume.destroy": "volume:destroy", "Volume.resize": "volume:resize",
    "Volume.snapshot": "volume:snapshot", "Volume.clone": "volume:clone",
    "Volume.revert": "volume:revert",
    "Volume.set": "volume:set_key",
    "Volume.unset": "volume:unset_key", "Volume.set_name": "volume:set_name",
    "Volume.set_description": "volume:set_description",
    "Volume.enable_cbt": "volume:enable_cbt", "Volume.disable_cbt": "volume:disable_cbt",
    "Volume.data_destroy": "volume:data_destroy",
    "Volume.list_changed_blocks": "changed:list_changed_blocks",
}
#: The same, for the entry points under datapath/<scheme>/ (their own Plugin.query).
DATAPATH_IMPLEMENTATIONS = {
    "Plugin.query": "datapath:query", "Datapath.attach": "datapath:attach",
    "Datapath.activate": "datapath:activate",
    "Datapath.activate_readonly": "datapath:activate_readonly",
    "Datapath.deactivate": "datapath:deactivate", "Datapath.detach": "datapath:detach",
}
#: The plugin's type: the directory org.xen.xapi.storage.<TYPE>, and Plugin.query's `plugin`.
PLUGIN_TYPE = "zfsaga"
