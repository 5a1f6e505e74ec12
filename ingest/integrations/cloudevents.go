package integrations

import "github.com/labstack/echo/v5"

// routeCloudEvents registers the route(s) of this tool. STUB: being written.
func (r *Routes) routeCloudEvents(e *echo.Echo) {}
