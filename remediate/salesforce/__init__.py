"""The Salesforce gateway: the only package that imports simple-salesforce and zeep."""
