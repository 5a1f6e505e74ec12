package integrations

import "github.com/labstack/echo/v5"

// routeAlertmanager registers the route(s) of this tool. STUB: being written.
func (r *Routes) routeAlertmanager(e *echo.Echo) {}
