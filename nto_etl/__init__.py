"""nto_etl: Northern Trail Outfitters' CRM <-> Marketing Cloud Engagement integration."""
