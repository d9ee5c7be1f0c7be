"""Per-type CRUD hooks (see contivpy.netmaster.crud for the contract).

One module per type, named in contivpy.netmaster.registry: tenant, policy, rule, netprofile,
app_profile, ext_contracts, aci_gw, bgp, service_lb (control-plane helper) and network, group,
global_ (network/IPAM helper).
"""
